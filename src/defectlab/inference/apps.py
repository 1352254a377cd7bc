from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "defectlab.inference"
    label = "inference"
