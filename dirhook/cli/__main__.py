from dirhook.cli import main

main()
