"""Project reports: label matrices from the database, fusion and agreement figures, dashboards, exports."""
