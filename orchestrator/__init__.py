"""vcwave: upgrade a whole vSphere SSO domain (PSCs of every site first, then vCenters), safely and reversibly."""
