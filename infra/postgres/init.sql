-- Run once, by the postgres image, on an empty data directory (/docker-entrypoint-initdb.d).
-- One database per service: the referrals event store (with its outbox) and the pathway
-- read model. Both services create their own tables on start.
CREATE DATABASE referrals;
CREATE DATABASE pathway;
