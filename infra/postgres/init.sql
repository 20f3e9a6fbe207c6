-- Run once, by the postgres image, on an empty data directory (/docker-entrypoint-initdb.d).
-- One database per service: each domain service's event store (with its outbox) and the
-- pathway read model (also the access facts), the registry, the vendors' subscriptions (and
-- their stream log), the audit log, and the revoked access tokens (every gRPC server and the
-- viewer). The services
-- create their own tables on start (the read model and the audit log by their migrations).
CREATE DATABASE referrals;
CREATE DATABASE admissions;
CREATE DATABASE discharges;
CREATE DATABASE medications;
CREATE DATABASE pathway;
CREATE DATABASE registry;
CREATE DATABASE municipal;
CREATE DATABASE correspondence;
CREATE DATABASE streams;
CREATE DATABASE audit;
CREATE DATABASE revocations;
