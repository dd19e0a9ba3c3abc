"""Telco customer churn: the feature schema, training, the model and the web service."""
