from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "defectlab.serving"
    label = "serving"
