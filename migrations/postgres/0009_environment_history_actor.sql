-- The environment board says who made each version live: the actor of the command that
-- completed the deployment or the rollback.
ALTER TABLE rm_environment_history ADD COLUMN actor text;
