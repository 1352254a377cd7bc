"""The SQLite database backend DefectLab runs on by default (see ``base``)."""
