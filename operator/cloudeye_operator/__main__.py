from cloudeye_operator.cli import main

main()
