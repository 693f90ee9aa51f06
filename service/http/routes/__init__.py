"""One router per resource: detection, STOW-RS studies, WADO-RS, model card, health, metrics, viewer."""
