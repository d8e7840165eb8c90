from neurodesk.cli.main import main

main()
