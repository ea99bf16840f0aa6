from jitpol.cli.main import main

main()
