-- Exact ownership of in-flight work: a lease is (lease_owner, lease_token).
--
-- lease_owner names the engine process (a new id per start); lease_token
-- names one claim of the message by that process. Every outcome write and
-- every renewal checks both, so a node whose lease lapsed and was claimed
-- again (by another node, or by itself under a new token) can no longer
-- change the message or release the new holder's lease.
--
-- Tokens: a scheduler claim takes one value of messages_lease_token_seq for
-- the rows it claims (1, 2, ...); the lease written with a row at accept
-- time has token 0 (a message is inserted once, so (owner, 0) names exactly
-- that lease, and no extra round trip is added to the insert path).
CREATE SEQUENCE messages_lease_token_seq AS bigint START 1;
ALTER TABLE messages ADD COLUMN lease_token bigint;
