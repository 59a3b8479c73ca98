"""Declares kernel API 2.x; its hooks must never be called by a 1.x kernel."""

from fastapi import APIRouter

from mes_kernel import hookimpl

MES_KERNEL_API = ">=2.0,<3"

router = APIRouter(prefix="/future", tags=["future"])


@router.get("/ping")
async def ping():
    return {"pong": True}


@hookimpl
def mes_register_routers(kernel):
    return [router]
