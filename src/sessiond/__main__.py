from sessiond.cli import main

main()
