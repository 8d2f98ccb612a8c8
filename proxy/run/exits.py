"""Process exit codes, one list for every command."""

EXIT_OK = 0
EXIT_STARTUP = 1  # could not start: a port taken, a config that cannot be used
EXIT_CATALOGUE = 2  # the catalogue or an app manifest does not load
EXIT_USAGE = 2  # a bad command line or config, as argparse exits
EXIT_FAILED = 1  # a command that ran and failed (apps push/rm)
