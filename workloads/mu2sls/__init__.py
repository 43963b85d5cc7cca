"""mu2sls stand-in: microservices on a shared durable KV store, behind a Knative-like ingress."""
