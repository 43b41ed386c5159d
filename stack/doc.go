// Package stack is the full stack as local processes, for machines without
// Docker: stack.sh starts MLflow, the trainer (train.py), N serve replicas
// behind HAProxy (haproxy.cfg, shared with the compose file), Prometheus and
// the legacy form, the same topology as the root docker-compose.yml. Its
// tests run three replicas against one MLflow, check that they agree, and
// drill HAProxy: clients that abort, a replica killed under load, a rolling
// restart. See docker/README.md.
package stack
