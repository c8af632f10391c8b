"""Suite `access_control`: authentication, secure channels, lockout and roles (cl. 66, 76, 78, 94), each check
tagged with the IEC 62443-3-3 system requirement (SR) it evidences."""
