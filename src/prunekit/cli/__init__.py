"""The ``prunekit`` command line (click): one module per subcommand, wired in :mod:`.main`."""
