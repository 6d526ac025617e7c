"""The Animatica web service: accounts, credits, payments and animation jobs over HTTP."""

from animatica.service.admin import disable_user, grant_credits, list_users
from animatica.service.app import create_app, serve

__all__ = ["create_app", "disable_user", "grant_credits", "list_users", "serve"]
