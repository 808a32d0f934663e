from zerotouch.cli import main

main()
