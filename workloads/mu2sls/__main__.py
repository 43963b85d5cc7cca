from mu2sls.ingress import main

main()
