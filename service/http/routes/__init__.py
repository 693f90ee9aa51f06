"""One router per resource: detection, STOW-RS studies, model card, health, metrics, viewer."""
