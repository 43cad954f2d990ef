from checkout_cli.entry import main

main()
