from pronghorn.host import main

main()
