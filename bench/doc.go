// Package bench is optgate's load and benchmark harness: an SMSC simulator
// with a latency distribution, receipts, MO traffic and throttling (built on
// smpp/smpptest), a lean load generator over SMPP or HTTP that counts every
// answer and records per-submit latency in an HdrHistogram, a null SMPP
// relay that gives the machine's ceiling, child-process management for
// optgate and Kannel, and the scenarios that tie them together with a
// report (summary, JSON, PNG chart).
//
// Everything listens on and connects to 127.0.0.1 only, and every loop is
// bounded in count and in time: a run ends at its duration, at its hard
// timeout, or when its context is cancelled, and stops every process it
// started on every exit path.
//
// The command cmd/optgate-bench is the front end:
//
//	optgate-bench smsc -listen 127.0.0.1:2776 -latency uniform:0.5ms-2ms -receipts
//	optgate-bench load -addr 127.0.0.1:2775 -binds 4 -window 256 -duration 10s
//	optgate-bench run mt-throughput -duration 20s -suppressed 1000000
package bench
