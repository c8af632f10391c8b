"""The status codes OPC UA Part 4 gives for unknown nodes, where asyncua 2.1 gives another one.

asyncua answers a Browse of a node that does not exist with Bad_NodeIdInvalid (which means a NodeId that
cannot be parsed) and a Call on an object or method that does not exist with Bad_NodeIdInvalid as well.
Part 4 says Bad_NodeIdUnknown for a node that is well formed but not in the address space (Browse §5.8.2,
Call §5.11.2: the object), and Bad_MethodInvalid for a method id that is no method of the object. A golden
device answers as the specification does (suite `protocol`, KZ-68-09).
"""

from __future__ import annotations

from typing import Any

from asyncua import ua


def conform_status_codes(iserver: Any) -> None:
    """Wrap the server's view and method services (per instance) so that unknown nodes get the right codes."""
    aspace, view, methods = iserver.aspace, iserver.view_service, iserver.method_service
    browse, call = view._browse, methods._call

    def _browse(desc: ua.BrowseDescription) -> ua.BrowseResult:
        result = browse(desc)
        if desc.NodeId not in aspace:
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)
        return result

    async def _call(request: ua.CallMethodRequest) -> ua.CallMethodResult:
        if request.ObjectId not in aspace:
            return ua.CallMethodResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown))
        if request.MethodId not in aspace:
            return ua.CallMethodResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadMethodInvalid))
        return await call(request)

    view._browse = _browse
    methods._call = _call
