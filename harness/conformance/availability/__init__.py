"""Suite ``availability`` (cl. 67, 73): a soak that polls every declared quantity, optionally under the rig's
link-fault schedule, written to the run's evidence as it goes."""
