from django.urls import path

from alleycat_site import converters  # noqa: F401  registers <id:...>

from .apis import ClassCurrentRaceApi, ClassListApi

app_name = "races"

urlpatterns = [
    path("classes/", ClassListApi.as_view(), name="class-list"),
    path("classes/<id:class_id>/current-race/", ClassCurrentRaceApi.as_view(), name="class-current-race"),
]
