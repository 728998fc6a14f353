-- The administrators' console: named accounts (argon2 password hash, TOTP secret, role) and
-- their sessions (only a hash of each session token is kept).
CREATE TABLE console_accounts (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL,
    full_name       TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    totp_secret     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    disabled_at     BIGINT,
    failures        BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    last_totp_step  BIGINT NOT NULL DEFAULT 0,
    last_login_at   BIGINT
);

CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES console_accounts (name),
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL
);
CREATE INDEX console_sessions_account ON console_sessions (account);

-- A certificate an opérateur had issued is refused until an administrateur approves it (two
-- people, so that no single account can take a partner's identity unseen).
ALTER TABLE certificates ADD COLUMN awaiting_approval BIGINT NOT NULL DEFAULT 0;
