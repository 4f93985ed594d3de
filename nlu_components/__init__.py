"""Custom Rasa NLU components (model training/serving only; nothing else imports them)."""
