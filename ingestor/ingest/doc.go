// Package ingest is the ingestor's batch handler: it turns a batch of
// consumed messages into durable outcomes, one per message, before the
// consumer may store any of their offsets.
//
// For every batch, in order:
//
//  1. decode (model.Decoder, with the size limit) and validate every message,
//     in parallel; failures become dead letters (too_large, malformed,
//     invalid);
//  2. resolve uids repeated within the batch: the first occurrence wins, an
//     identical later one is a duplicate, a different one a conflict;
//  3. write the valid orders in one transaction (package postgres), which
//     reports each as inserted, duplicate, conflict (dead-lettered) or
//     rejected (dead-lettered as db_permanent, its neighbours stored);
//  4. cache the stored orders in Redis (failures are logged and counted,
//     never fatal);
//  5. send the dead letters and wait for the broker's acknowledgements.
//
// Steps 3 and 5 retry transient failures forever with exponential backoff
// and jitter. Between attempts the handler calls the consumer's WaitFunc,
// through which the consumer learns that the batch is failing: it pauses
// fetching and keeps serving the group protocol, so that an outage buffers
// nothing new and does not get the member evicted. Commit is safe for
// concurrent use: the consumer commits a few batches at once, each in its
// own transaction, and stores their offsets in batch order. Only a
// cancelled context stops the retries; the batch is then abandoned without
// any offset stored, and whoever consumes the partitions next gets it again.
package ingest
