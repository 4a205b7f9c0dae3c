from naestro.cli import main

main()
