from django.urls import path

from .apis import ClassCurrentRaceApi, ClassListApi

app_name = "races"

urlpatterns = [
    path("classes/", ClassListApi.as_view(), name="class-list"),
    path("classes/<int:class_id>/current-race/", ClassCurrentRaceApi.as_view(), name="class-current-race"),
]
