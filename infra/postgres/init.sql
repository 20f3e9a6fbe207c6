-- Run once, by the postgres image, on an empty data directory (/docker-entrypoint-initdb.d).
-- One database per service: each domain service's event store (with its outbox) and the
-- pathway read model. The services create their own tables on start.
CREATE DATABASE referrals;
CREATE DATABASE admissions;
CREATE DATABASE discharges;
CREATE DATABASE medications;
CREATE DATABASE pathway;
