"""Suite `documentation`: documentary checks of cl. 50, 58, 59, 72, 79, 87 and 93."""
