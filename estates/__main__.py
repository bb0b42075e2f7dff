from estates.cli import main

main(prog_name="estates")
