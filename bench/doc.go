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
//	optgate-bench run cluster -duration 20s -stops 1000
//
// `optgate-bench scenarios` lists the scenarios. The cluster scenario
// (issue 16) runs, against the one simulator: optgate alone (no cluster:
// section), MT load for -duration, then STOP MOs from new handsets for
// -duration; then three `optgate serve` processes clustered over embedded
// NATS on loopback (free ports, temp data dirs, consent stream R3 with
// every write synced), each bound to the simulator with its own system_id
// so that an MO can be sent to a chosen node, and a platform receiver
// bound on each. It preloads -suppressed (default 100,000) on node 1 and
// waits until every node has applied them, then measures MT spread over
// the three (binds per node = -binds) and STOP MOs spread over the three.
// The MT figure to compare is screened_per_s (sent or refused as opted
// out; a node failing closed answers ESME_RX_T_APPN, counted apart); the
// opt-out figure is STOPs acknowledged a second, each acknowledged only
// once durable (synced; in the cluster, held by a quorum). After the storm
// it records catch_up_seconds, until every node has applied it. Then, on a
// settled cluster, -stops timed STOPs idle and again under MT load (-rate,
// or half the three nodes' screened maximum), eight in flight: the
// simulator delivers a STOP from a new handset to node A; from its
// ESME_ROK, node B (another, at random) gets submit_sm to that handset back
// to back until one is refused 0x401 (each STOP bounded: 10 s for the
// acknowledgement, 10 s for the refusal). It reports the p50/p99 of that
// time, the sends B accepted before it refused, B's temporary refusals,
// and the replication lag p50/p99 that every node's
// optgate_cluster_replication_lag_seconds recorded over the phase (from
// /metrics, interpolated within the histogram's buckets, so below 5 ms a
// figure is coarse). The goals are the issue's: p99 ≤ 20 ms idle, ≤ 50 ms
// under load (the load is 50,000 msgs/s), ≥ 10,000 durable
// opt-outs/s with R3. Three nodes on one machine share its cores with
// NATS, the simulator and the load: they measure correctness and
// overhead, not scale-out, and the report says so.
package bench
