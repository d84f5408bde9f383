"""The console as a Litestar plugin: its routes under ``/console``, its templates, its assets.

``SESSIOND_CONSOLE=off`` leaves the app without any of it. Nothing of the console runs on the
API's routes: its headers are set by its own router, and it adds no middleware.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router, get
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.plugins import InitPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from sessiond.console import admin, devices, security
from sessiond.console.state import Console, UserCookies
from sessiond.runtime import Runtime

HERE = Path(__file__).parent


@get("/", include_in_schema=False)
async def index() -> Redirect:
    return Redirect(devices.DEVICES)


def router(console: Console) -> Router:
    """Every route of the console, under ``/console``, with its security headers."""
    static = create_static_files_router(
        path="/static",
        directories=[HERE / "static"],
        include_in_schema=False,
        name="console-static",
    )
    return Router(
        path="/console",
        route_handlers=[
            index,
            devices.devices,
            devices.sign_out_device,
            devices.sign_out_others,
            devices.events,
            admin.sign_in_page,
            admin.sign_in,
            admin.sign_out,
            admin.admin_page,
            admin.force_sign_out_session,
            admin.force_sign_out_subject,
            static,
        ],
        dependencies={"console": Provide(lambda: console, sync_to_thread=False)},
        response_headers=security.HEADERS,
        include_in_schema=False,
    )


class ConsolePlugin(InitPlugin):
    """Adds the console to the app of ``runtime``, unless ``SESSIOND_CONSOLE=off``."""

    def __init__(self, runtime: Runtime, cookies: UserCookies) -> None:
        self._runtime = runtime
        self._cookies = cookies

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        if self._runtime.settings.console == "off":
            return app_config
        console = Console(self._runtime, self._cookies)
        app_config.route_handlers.append(router(console))
        app_config.template_config = TemplateConfig(
            directory=HERE / "templates", engine=JinjaTemplateEngine
        )
        app_config.lifespan.append(console.lifespan)
        return app_config
