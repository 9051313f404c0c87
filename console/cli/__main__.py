from strongroom.console.cli import main

main()
