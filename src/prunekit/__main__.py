"""``python -m prunekit``: the command line."""

from prunekit.cli.main import main

if __name__ == "__main__":
    main()
