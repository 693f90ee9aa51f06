"""`python -m fsd ...` runs the `fsd` command (also under torchrun)."""

from fsd.cli import main

if __name__ == "__main__":
    main()
