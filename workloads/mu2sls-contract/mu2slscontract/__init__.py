"""Contract stand-ins of the minikube, kubectl, kn and wrk2 command lines the knative deployer runs
on the mu2sls node, over the local mu2sls stand-in services (workloads/mu2sls). See ../README.md."""
