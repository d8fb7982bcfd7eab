"""`python -m hmtl`: the `hmtl` command line."""

from hmtl.orchestration.cli.main import main

main(prog_name="hmtl")
