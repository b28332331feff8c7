// Package ingest is the ingestor's batch handler: it turns a batch of
// consumed messages into durable outcomes, one per message, before the
// consumer may store any of their offsets.
//
// For every batch, in order:
//
//  1. decode (model.Decoder, with the size limit) and validate every message,
//     in parallel; failures become dead letters (too_large, malformed,
//     invalid; an order that breaks only consistency rules is kept under
//     ConsistencyAccept); a tombstone (a null value) names a uid to erase;
//  2. erase the tombstones' uids through the Store, and settle the orders of
//     those uids in the batch in offset order (before the tombstone: erased
//     with it; after: dead-lettered as erased);
//  3. resolve uids repeated within the batch: the first occurrence wins, an
//     identical later one is a duplicate, a different one a conflict;
//  4. write the valid orders to the Store, which reports each as inserted,
//     duplicate, conflict (dead-lettered), rejected (dead-lettered as
//     db_permanent, its neighbours stored) or erased (dead-lettered as
//     erased, its content left out);
//  5. set the stored orders in the Cache (failures are logged and counted,
//     never fatal), delete the erased ones from it (retried: an erasure is
//     not done while the cache serves the order), and announce both to the
//     readers (best effort, unless the batch erased);
//  6. send the dead letters through DeadLetters and wait for their
//     acknowledgements.
//
// A batch that erases must be committed alone (Batch.Exclusive): the
// consumer waits for the batches before it and starts none after it until
// it is done, so that orders and erasures take effect in offset order.
//
// The package owns every type it exchanges with the outside: Message in,
// StoredOrder and WriteResult with the Store, CacheEntry with the Cache,
// DeadLetter out. It imports none of its adapters; they import it (package
// kafka consumes Messages and publishes DeadLetters, package postgres is the
// Store, in one transaction per batch, package redis the Cache) and
// translate their drivers' errors at their border: a row PostgreSQL refuses
// for good comes back as an error wrapping ErrPermanent.
//
// Steps 2, 4, 5 (for erasures) and 6 retry transient failures forever with
// exponential backoff and jitter. Between attempts the handler calls the
// consumer's WaitFunc,
// through which the consumer learns that the batch is failing: it pauses
// fetching and keeps serving the group protocol, so that an outage buffers
// nothing new and does not get the member evicted. Commit is safe for
// concurrent use: the consumer commits a few batches at once, each in its
// own transaction, and stores their offsets in batch order. Only a
// cancelled context stops the retries; the batch is then abandoned without
// any offset stored, and whoever consumes the partitions next gets it again.
package ingest
