"""One module per topic, each owning an APIRouter."""
