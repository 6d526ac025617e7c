"""The HTTP routers: each file is one group of endpoints, thin over the service's plain functions."""
