// A Swift program embedding the chat engine: provisions a course, follows it with a listener,
// moderates with a plugin written in Swift, sends, reads history and closes the engine.
//
// NOT COMPILED HERE (no Swift toolchain on this project's machines); see ../README.md for how
// to build it on a machine with Swift 5.9+.

import Foundation

final class Printer: EventListener {
    func onEvent(event: Event) throws {
        switch event {
        case let .newMessage(message):
            print("[\(message.courseId)#\(message.seq)] \(message.sender.name): \(message.message)")
        case let .userTyping(courseId, _, name, isTyping):
            print("[\(courseId)] \(name) \(isTyping ? "is typing…" : "stopped typing")")
        default:
            print("event: \(eventName(event: event))")
        }
    }
}

final class NoShouting: MessagePlugin {
    func beforeSend(draft: Draft) throws -> Verdict {
        if draft.text.contains("spam") { return .reject(reason: "no spam") }
        if draft.text == draft.text.uppercased() && draft.text.count > 3 {
            return .rewrite(text: draft.text.lowercased())
        }
        return .accept
    }

    func afterEvent(event: Event) throws {}
}

let admin = Actor(id: "lms", name: "LMS", avatar: nil, role: .admin)
let ada = Actor(id: "ada", name: "Ada", avatar: nil, role: .student)

do {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("chat-swift").path
    let engine = try ChatEngine.open(dataDir: dir, config: nil, plugins: [NoShouting()])
    defer { try? engine.close() }

    _ = try engine.putCourse(actor: admin, courseId: "c1", update: CourseUpdate(name: "Swift 101", chatEnabled: true))
    _ = try engine.enroll(actor: admin, courseId: "c1", userId: "ada", role: .student)

    let subscription = try engine.subscribe(actor: admin, courseId: "c1", sinceSeq: nil, listener: Printer())
    defer { subscription.close() }

    let sent = try engine.send(actor: ada, request: SendMessage(courseId: "c1", message: "HELLO FROM SWIFT"))
    print("stored as: \(sent.message)")  // "hello from swift"

    do {
        _ = try engine.send(actor: ada, request: SendMessage(courseId: "c1", message: "buy spam"))
    } catch let error as ChatError {
        print("refused: \(error.code()) \(error)")  // FORBIDDEN
    }

    let page = try engine.history(actor: ada, courseId: "c1", query: HistoryQuery())
    print("history: \(page.messages.count) of \(page.pagination.total)")
    Thread.sleep(forTimeInterval: 0.2)  // let the listener print
} catch {
    print("error: \(error)")
    exit(1)
}
