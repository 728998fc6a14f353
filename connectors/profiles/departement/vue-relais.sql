-- In the département's database (PostgreSQL): one row per change of an APA/RSA file, for the
-- Relais connector. `etat` uses the lifecycle's words; `pieces_manquantes` separates
-- documents with `|`. Grant the connector SELECT on the view and INSERT/DELETE on its status
-- table only.
CREATE TABLE IF NOT EXISTS dossiers_journal (
    seq               BIGSERIAL PRIMARY KEY,
    numero_usager     TEXT NOT NULL,
    nom_naissance     TEXT,
    prenom            TEXT,
    date_naissance    DATE,
    insee_naissance   TEXT,
    numero_dossier    TEXT,
    demarche          TEXT,
    theme             TEXT,
    etat              TEXT,
    pieces_manquantes TEXT,
    apa_notifiee      BOOLEAN NOT NULL DEFAULT false,
    apa_fin_droits    DATE,
    modifie_le        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE OR REPLACE VIEW relais_dossiers AS
SELECT seq, numero_usager, nom_naissance, prenom, to_char(date_naissance, 'YYYY-MM-DD') AS date_naissance,
       insee_naissance, numero_dossier, demarche, theme, etat, pieces_manquantes,
       CASE WHEN apa_notifiee THEN 'oui' ELSE '' END AS apa_notifiee,
       to_char(apa_fin_droits, 'YYYY-MM-DD') AS apa_fin_droits
FROM dossiers_journal;

-- Sample: Mme Castet's APA renewal, then waiting for her tax notice.
INSERT INTO dossiers_journal (numero_usager, nom_naissance, prenom, date_naissance, insee_naissance,
                              numero_dossier, demarche, theme, etat, pieces_manquantes,
                              apa_notifiee, apa_fin_droits)
VALUES ('U-7781', 'CASTET', 'Rose', '1943-02-17', '31021', 'APA-2026-7781', 'local:apa-renouvellement', 'social', 'in_progress', '', true, '2027-03-31'),
       ('U-7781', 'CASTET', 'Rose', '1943-02-17', '31021', 'APA-2026-7781', 'local:apa-renouvellement', 'social', 'waiting_documents', 'avis d''imposition 2025', true, '2027-03-31');
