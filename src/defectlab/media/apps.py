from django.apps import AppConfig


class MediaConfig(AppConfig):
    name = "defectlab.media"
    label = "media"

    def ready(self) -> None:
        from django.conf import settings
        from PIL import Image

        # Pillow's own bomb guard must not be stricter than our documented limit; our check
        # (before decoding) is the one that speaks to users.
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, settings.MAX_IMAGE_PIXELS)
