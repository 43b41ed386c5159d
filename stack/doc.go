// Package stack is the full stack as local processes, for machines without
// Docker: stack.sh starts MLflow, the trainer (train.py), N serve replicas
// behind the load balancer in lb/, Prometheus and the legacy form, the same
// topology as the root docker-compose.yml. Its test runs three replicas
// against one MLflow and checks that they agree. See docker/README.md.
package stack
