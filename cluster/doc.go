// Package cluster links optgate nodes through NATS JetStream so that they
// share one replicated consent log.
package cluster
