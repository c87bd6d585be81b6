fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let db = indradb::RocksdbDatastore::new_db(&dir).unwrap();
    let v = indradb::Vertex::new(indradb::Identifier::new("world").unwrap());
    db.create_vertex(&v).unwrap();
    db.sync().unwrap();
    println!("{:?}", db.get(indradb::AllVertexQuery).unwrap());
}
