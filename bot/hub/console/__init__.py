"""The staff console (hand-off to humans, data rights, people): ``router`` is mounted by the
hub."""

from bot.hub.console.dashboard import router as dashboard_router
from bot.hub.console.kb import router as kb_router
from bot.hub.console.learn import router as learn_router
from bot.hub.console.people import router as people_router
from bot.hub.console.privacy import router as privacy_router
from bot.hub.console.routes import router

router.include_router(privacy_router)
router.include_router(people_router)
router.include_router(kb_router)
router.include_router(dashboard_router)
router.include_router(learn_router)

__all__ = ["router"]
