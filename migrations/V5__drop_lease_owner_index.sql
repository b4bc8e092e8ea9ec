-- messages_lease_owner_idx was one more index entry written for every
-- accepted message, on the hottest insert path, for two statements that
-- touch only messages in flight (renew this node's leases, release them at
-- shutdown). Both filter on the same state predicate as messages_pending_idx,
-- whose rows are only the messages in flight, so they scan that index instead.
DROP INDEX IF EXISTS messages_lease_owner_idx;
